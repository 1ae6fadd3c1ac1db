"""A small shop: product pages, price quotes and sessions, each with a cache on the toolkit."""
