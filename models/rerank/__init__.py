"""models/rerank."""
