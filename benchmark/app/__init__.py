"""`serve`: a local web page over a finished run (classify photos, see Grad-CAM, browse results).

`run_folder.py` reads what a finished run holds (no TensorFlow), `uploads.py` refuses what is not a
modest image before decoding it, `classifier.py` scores photos through `inference/`, `server.py`
maps them to HTTP routes, `serve.py` is the command. The page itself is `static/` (hand-written,
no build step, no asset fetched from outside the package).
"""
