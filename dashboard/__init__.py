"""The Streamlit dashboard: reads run directories only, imports none of the other EdgeFleet packages."""
