"""stream_app/web."""
