"""Object storage (S3, Ceph RGW): golden datasets and the evidence archive."""
