"""Frame sources for ``python3 -m engines classify BUNDLE SOURCE...`` and ``Classifier.stream(source)``, named
as jetson-inference's ``videoSource`` names them:

==========================  ===============================================================================
SOURCE                      frames from
==========================  ===============================================================================
``photo.jpg``               an image file (Pillow; any format it reads): one frame
``folder/``                 the image files in a folder, sorted by name: one frame each
``clip.mp4`` (any video)    a video file, frame by frame (OpenCV)
``/dev/video0``             a V4L2 camera (USB webcam; OpenCV)
``csi://0``                 a Jetson CSI camera through GStreamer (``nvarguscamerasrc sensor-id=0``; OpenCV
                            built with GStreamer, as JetPack's is); ``?width=&height=&fps=`` in the name
                            change the 1280x720 at 30 fps default
``rtsp://...``,             a network stream (OpenCV, FFmpeg or GStreamer backend)
``http(s)://...``
==========================  ===============================================================================

Image files need only Pillow; everything else needs OpenCV's Python module (``cv2``): JetPack ships it
(``python3-opencv``); elsewhere ``pip install opencv-python-headless``. Without it those sources exit 3
(:class:`engines.common.errors.MissingPrerequisite`) naming what is missing. A source that cannot be opened (no such
file or device, a stream that does not answer) is bad input (exit 2).

:func:`open_source` yields :class:`Frame` tuples ``(index, image, color, name, source)``: ``index`` counts the
source's frames from 0 (with ``every=N`` only every Nth frame is read into a result, indices keep counting
the source's frames), ``image`` is HxWx3 uint8, ``color`` "rgb" (Pillow) or "bgr" (OpenCV), ``name`` the file
or the source, ``source`` the SOURCE as given. ``max_frames`` stops after that many frames yielded.
"""

import collections
import os
import re

from .common.errors import MissingPrerequisite, UserError, first_line

Frame = collections.namedtuple("Frame", "index image color name source")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
CSI_DEFAULTS = {"width": 1280, "height": 720, "fps": 30}
OPENCV_HINT = ("JetPack ships it (sudo apt-get install python3-opencv); elsewhere python3 -m pip install "
               "opencv-python-headless")


def import_cv2(what):
    """The cv2 module; :class:`MissingPrerequisite` naming ``what`` needs it where it does not import."""
    try:
        import cv2
    except ImportError as exc:
        raise MissingPrerequisite("OpenCV (cv2) does not import ({}): {} needs it; {}".format(
            first_line(exc), what, OPENCV_HINT)) from None
    return cv2


def csi_pipeline(spec):
    """The GStreamer pipeline of ``csi://N[?width=W&height=H&fps=F]``: nvarguscamerasrc on sensor N, NVMM
    frames converted by nvvidconv, BGR into OpenCV's appsink (dropping frames the app is too slow for)."""
    rest = spec[len("csi://"):]
    sensor, _, query = rest.partition("?")
    if not sensor.isdigit():
        raise UserError("{}: a CSI camera is csi://N with N the sensor id, e.g. csi://0".format(spec))
    opts = dict(CSI_DEFAULTS)
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        if key not in opts or not value.isdigit() or int(value) < 1:
            raise UserError("{}: unknown or bad option {!r} (width, height, fps: positive integers)".format(spec, part))
        opts[key] = int(value)
    return ("nvarguscamerasrc sensor-id={} ! video/x-raw(memory:NVMM), width={}, height={}, framerate={}/1, "
            "format=NV12 ! nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
            "appsink drop=true max-buffers=1".format(sensor, opts["width"], opts["height"], opts["fps"]))


def source_kind(spec):
    """"image", "folder", "video", "v4l2", "csi" or "stream" for a SOURCE (see the module docstring)."""
    lower = spec.lower()
    if lower.startswith("csi://"):
        return "csi"
    if lower.startswith(STREAM_SCHEMES):
        return "stream"
    if spec.startswith("/dev/video"):
        return "v4l2"
    if os.path.isdir(spec):
        return "folder"
    if not os.path.exists(spec):
        if lower.endswith(IMAGE_EXTENSIONS):
            raise UserError("cannot read image {}: no such file".format(spec))
        raise UserError("no such file, folder or device: {}".format(spec))
    return "image" if lower.endswith(IMAGE_EXTENSIONS) else "video"


def _image_files(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)
                   and os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise UserError("{}: no image files ({}) in this folder".format(folder, ", ".join(IMAGE_EXTENSIONS)))
    return [os.path.join(folder, n) for n in names]


def _capture(spec, kind):
    pipeline = csi_pipeline(spec) if kind == "csi" else None
    if kind == "v4l2" and not os.path.exists(spec):
        raise UserError("no such camera: {} (ls /dev/video*)".format(spec))
    cv2 = import_cv2({"video": "a video file", "v4l2": "a V4L2 camera", "csi": "a CSI camera",
                      "stream": "a network stream"}[kind])
    if kind == "csi":
        if not re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()):
            raise MissingPrerequisite("{}: this OpenCV ({}) is built without GStreamer, which a CSI camera needs "
                                      "(JetPack's python3-opencv has it)".format(spec, cv2.__version__))
        cap = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
    elif kind == "v4l2":
        cap = cv2.VideoCapture(spec, cv2.CAP_V4L2)
    else:
        cap = cv2.VideoCapture(spec)
    if not cap.isOpened():
        cap.release()
        raise UserError("OpenCV {} cannot open {} as a {}".format(cv2.__version__, spec, {
            "video": "video file", "v4l2": "camera", "csi": "CSI camera", "stream": "stream"}[kind]))
    return cap


def _check(every, max_frames):
    for name, value in (("every", every), ("max_frames", max_frames)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError("{} must be a positive integer, got {!r}".format(name, value))


def open_source(spec, every=1, max_frames=None):
    """Frames of one SOURCE (see the module docstring): a generator of :class:`Frame`. Opening errors are
    raised when the generator starts."""
    from .preprocess import load_image

    _check(every, max_frames)
    spec = str(spec)
    kind = source_kind(spec)
    yielded = 0
    if kind in ("image", "folder"):
        paths = [spec] if kind == "image" else _image_files(spec)
        for index, path in enumerate(paths):
            if index % every:
                continue
            yield Frame(index, load_image(path), "rgb", path, spec)
            yielded += 1
            if max_frames is not None and yielded >= max_frames:
                return
        return
    cap = _capture(spec, kind)
    try:
        index = 0
        while max_frames is None or yielded < max_frames:
            if index % every:
                ok = cap.grab()  # skipped frames are not decoded into images
                image = None
            else:
                ok, image = cap.read()
            if not ok:
                return
            if image is not None:
                yield Frame(index, image, "bgr", spec, spec)
                yielded += 1
            index += 1
    finally:
        cap.release()


def open_sources(specs, every=1, max_frames=None):
    """Frames of several SOURCEs in turn; ``max_frames`` applies to each source. Every source is checked
    (it exists, its kind is known) before the first frame is read."""
    specs = [str(s) for s in specs]
    for spec in specs:
        source_kind(spec)
    _check(every, max_frames)
    for spec in specs:
        for frame in open_source(spec, every, max_frames):
            yield frame
