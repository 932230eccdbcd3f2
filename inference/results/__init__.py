"""What a model run leaves: result grids and segmentation maps, the on-disk cache,
CSV/GeoJSON/TIFF exports.
"""
