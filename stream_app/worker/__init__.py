"""stream_app/worker."""
