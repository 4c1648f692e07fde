"""Vector files: .npy (memory-mapped), Parquet and JSONL; every writer is atomic."""
from .npy import open_npy, read_npy_header, save_npy
from .vectors import VectorTable, load_vector_table, load_vectors, save_vectors

__all__ = ["open_npy", "read_npy_header", "save_npy", "load_vectors", "load_vector_table",
           "save_vectors", "VectorTable"]
