"""What both sides of a Flower round agree on: message types, how records are packed, process setup."""
