"""`coordinator demo`: a whole federation on phantom data on this machine, and the page it leaves."""
