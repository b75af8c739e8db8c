"""Class-conditional 3D generators of a CT box + lesion mask, trained on the site's own cases."""
