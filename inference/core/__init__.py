"""Shared building blocks with no domain of their own: geometry and coordinate spaces, paths,
atomic writes, the allocator, threads.
"""
