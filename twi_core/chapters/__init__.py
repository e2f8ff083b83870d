"""Chapter orchestration: one module per chapter of the book, each with its preset table and the few high-level calls
its notebook makes. Notebooks stay thin; the logic they need lives here and in the library modules."""
