"""Explanations: CAM methods and hook-free runners, planning and stitching over patches and
regions, the pointing game.
"""
