"""Reading and writing media: decode, encode, remux, output paths, background prefetch."""
