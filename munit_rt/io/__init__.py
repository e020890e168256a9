"""Files in and out of translate: finding and decoding inputs (images.py), writing outputs (outputs.py)."""
