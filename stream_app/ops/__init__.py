"""stream_app/ops."""
