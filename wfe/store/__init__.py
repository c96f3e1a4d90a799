"""The content-addressed store: blobs, records, where they live under the root, digests, names, the local cache."""
