"""The dashboard's teaching data, as plain data and without Streamlit: the zoo as pages see it (``zoo_views``), attack
and saliency panels (``panels``), the transfer and morph lessons (``transfer``, ``morphs``), the masking lesson
(``masking``), the quiz (``quiz``) and drawn or uploaded digits (``digit``).

It may import every library package (core … paper) but never ``gradreg.cli`` or ``gradreg.ui``.
"""
