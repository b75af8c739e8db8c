"""Class-conditional 3D generators of CT cube + lesion mask, trained on the site's own cases."""
