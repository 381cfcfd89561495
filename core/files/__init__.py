"""Reading and writing files: atomic writes and content digests."""
