"""Plotly figures from tensors, arrays and records, no Streamlit: shared heatmaps, curves and grids (``figures``), the
dashboard pages' figures (``page_figures``) and the lessons' figures (``lesson_figures``).

It imports no other gradreg package: figures take data, never models.
"""
