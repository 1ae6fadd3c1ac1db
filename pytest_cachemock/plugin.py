"""The pytest plugin (entry point ``cachemock``): hooks and fixtures only."""
