"""Profiles for cache libraries other than our own (PyTorch Inductor); imported only when enabled."""
