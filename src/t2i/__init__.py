"""t2i: the small library behind the book "From autoencoders to VQGAN-CLIP".

Every chapter imports its models, data and training loop from here and shows
the important parts with :func:`t2i.viz.show_source`, so the code a reader
sees is the code that ran.
"""

__version__ = "0.1.0"
