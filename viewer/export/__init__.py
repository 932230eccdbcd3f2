"""Qt-free figure export: compose slide, layers, annotations and overlays off-screen,
tile by tile, and write PNG or TIFF with a provenance sidecar.

Entry points live in :mod:`viewer.export.figure` (``view_compositor``,
``region_compositor``, ``compose_view``, ``write_figure``); the scale bar the canvas
shows is :func:`viewer.export.scale_bar_render.render_scale_bar`.  Nothing is imported
here, so importing one module (e.g. ``legend_render``) stays cheap.
"""
