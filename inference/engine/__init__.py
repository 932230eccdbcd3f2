"""The inference engine: a job over a slide's patch grid, read ahead, run on the device,
streamed back in batches.
"""
