"""BT Lab's Streamlit app: shared state, widgets, charts and background jobs for the pages."""
