"""Profiles for other cache libraries (PyTorch Inductor); imported only when enabled."""
