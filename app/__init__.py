"""The Streamlit app (``app/main.py``) and the plain functions it stands on.

``uploads`` (uploaded bytes -> Scan), ``compute`` (restoration and study over ``durr.infer``),
``export`` (restored Scan -> download bytes) and ``views`` (display windows, plots) import no
streamlit and are unit-tested on their own; ``main`` is the page.
"""
