"""The operator's console: a JSON API and a live page over the system's streams and buckets."""
