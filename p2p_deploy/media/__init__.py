"""Media I/O for the runtime: finding inputs, reading and writing images and videos with
OpenCV, resizing frames to the model's size and back, and probing which video codecs work."""
