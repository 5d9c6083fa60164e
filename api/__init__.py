"""HTTP API over core, mounted under /api inside the Streamlit server."""
