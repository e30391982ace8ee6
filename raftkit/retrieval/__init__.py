"""Retrieval: load documents, chunk them, embed them, keep a FAISS index, answer with RAG."""
