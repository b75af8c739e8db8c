"""The lesionstats backend: public anatomy, and DP statistics of each class's lesion."""
