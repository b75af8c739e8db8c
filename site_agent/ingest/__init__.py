"""Getting CT into the site's private case store (scan, check, crop, store), and the C-STORE receiver."""
