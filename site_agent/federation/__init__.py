"""The site's side of the federation: its key, its SuperNode, and the ClientApp that answers rounds."""
