"""A hand-drawn or uploaded picture of a digit → an MNIST-style 28×28 image, and how every model reacts to it.

MNIST's own recipe (LeCun, Cortes & Burges, http://yann.lecun.com/exdb/mnist/): grey levels, the digit bright on a
dark background, size-normalized to fit a 20×20 box (aspect ratio kept, anti-aliased), then centred by its centre of
mass in a 28×28 field. ``react`` shows the prediction, the input gradient and FGSM / TGSM of Ross & Doshi-Velez
(AAAI 2018, https://arxiv.org/abs/1711.09404) on such an image.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageSequence, UnidentifiedImageError
from torch import nn

from gradreg.evaluation.accuracy import predict
from gradreg.lessons.panels import attack_panel

MAX_BYTES = 5 * 2**20  # uploads above 5 MiB are refused before decoding
MAX_PIXELS = 25_000_000  # width × height read from the header; refuses decompression bombs before decoding
SIZE, BOX = 28, 20  # MNIST: a 28×28 field, the digit fitted in a 20×20 box
STROKE = 0.2  # after contrast stretching, pixels above this count as ink (crop box, emptiness)
MIN_CONTRAST = 0.05  # a picture whose grey levels span less than this is empty


class UploadError(ValueError):
    """The picture cannot be turned into a digit; the message says why, in words for the user."""


class EmptyImageError(UploadError):
    """The picture holds no stroke: a blank canvas, an all-constant image, a single pixel."""


def _decode(data: bytes) -> np.ndarray:
    """Image bytes → ``(H, W)`` or ``(H, W, C)`` array of its first frame (limits checked before decoding)."""
    if len(data) > MAX_BYTES:
        raise UploadError(f"the file has {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES / 2**20:.0f} MB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise UploadError(f"the image has {width}×{height} pixels; the limit is {MAX_PIXELS:,} pixels")
            frame = next(ImageSequence.Iterator(img))  # animated GIF/PNG/WebP: the first frame
            return _pixels(frame)
    except UploadError:
        raise
    except Image.DecompressionBombError as err:  # Pillow's own guard, for headers far beyond MAX_PIXELS
        raise UploadError(f"the image has too many pixels; the limit is {MAX_PIXELS:,} pixels") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UploadError("this is not a readable image (PNG, JPEG, GIF, BMP or WebP)") from err


def _pixels(frame: Image.Image) -> np.ndarray:
    """A PIL frame → float array in [0, 1]: ``(H, W)`` grey, or ``(H, W, 4)`` when it has transparency."""
    if frame.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale PNGs decode to these
        return np.asarray(frame, dtype=np.float64) / 65535.0
    if frame.mode == "F":
        return np.asarray(frame, dtype=np.float64)
    transparent = frame.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in frame.info
    frame = frame.convert("RGBA" if transparent else "L")
    return np.asarray(frame, dtype=np.float64) / 255.0


def _grey(a: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1|3|4)`` in [0, 1] → ``(H, W)`` grey levels; transparency composited sensibly."""
    if a.ndim == 2:
        return a
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise UploadError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {a.shape}")
    colour = a[..., :3] if a.shape[2] >= 3 else a[..., :1]
    luminance = colour @ np.array([0.299, 0.587, 0.114]) if colour.shape[2] == 3 else colour[..., 0]  # ITU-R 601
    if a.shape[2] not in (2, 4):
        return luminance
    alpha = a[..., -1]
    if alpha.max() <= 0:
        raise EmptyImageError("the image is fully transparent")
    # Ink drawn on a transparent sheet: put it on the opposite background (dark ink on white, light ink on black).
    ink = float((luminance * alpha).sum() / alpha.sum())
    background = 1.0 if ink < 0.5 else 0.0
    return luminance * alpha + background * (1 - alpha)


def _as_float(data: np.ndarray) -> np.ndarray:
    a = np.asarray(data)
    if a.size == 0:
        raise EmptyImageError("the picture has no pixels")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    if np.issubdtype(a.dtype, np.complexfloating):
        raise UploadError(f"unsupported array type {a.dtype}: an image holds real grey or colour values")
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.number):
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise UploadError("the image holds NaN or infinite values")
        return a / 255.0 if a.max(initial=0) > 1 else a
    raise UploadError(f"unsupported array type {a.dtype}")


def _bright_on_dark(g: np.ndarray) -> np.ndarray:
    """Grey levels → ink in [0, 1] on a 0 background: the border's median grey is the background; a light
    background is inverted, then the contrast is stretched so the background is 0 and the darkest ink 1."""
    if g.max() - g.min() < MIN_CONTRAST:
        raise EmptyImageError("the image is empty: all its pixels have (almost) the same grey level")
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    background = float(np.median(border))
    ink = g - background if background < 0.5 else background - g
    top = ink.max()
    if top < MIN_CONTRAST:
        raise EmptyImageError("the image is empty: nothing stands out from its background")
    return np.clip(ink / top, 0.0, 1.0)


def _fit(ink: np.ndarray) -> np.ndarray:
    """Crop to the stroke, scale to fit the 20×20 box (aspect kept, anti-aliased), centre by mass in 28×28."""
    rows, cols = np.nonzero(ink > STROKE)
    if rows.size == 0:
        raise EmptyImageError("the image is empty: no stroke found")
    crop = np.where(ink > STROKE / 2, ink, 0.0)[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    patch = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    patch = np.clip(patch, 0.0, 1.0)
    if patch.max() <= 0:
        raise EmptyImageError("the image is empty: the stroke vanishes at 28×28")
    patch = patch / patch.max()
    ys, xs = np.indices(patch.shape)
    mass = patch.sum()
    centre = ((ys * patch).sum() / mass, (xs * patch).sum() / mass)
    # Shift the centre of mass to the field's centre (13.5, 13.5), without cutting off any of the stroke.
    top = int(np.clip(round((SIZE - 1) / 2 - centre[0]), 0, SIZE - patch.shape[0]))
    left = int(np.clip(round((SIZE - 1) / 2 - centre[1]), 0, SIZE - patch.shape[1]))
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    return out


def preprocess_image(data: bytes | np.ndarray) -> np.ndarray:
    """A picture of one digit → an MNIST-style image.

    Args:
        data: the bytes of an image file (PNG, JPEG, GIF, BMP, WebP; any size up to ``MAX_BYTES`` and ``MAX_PIXELS``,
            colour or grey, 8 or 16 bits, transparent, animated: first frame), or an array ``(H, W)`` / ``(H, W, 3)``
            / ``(H, W, 4)`` (uint8, uint16, or floats in [0, 1]) such as a drawing canvas's RGBA pixels.
    Returns:
        ``(28, 28)`` float32 in [0, 1]: the digit bright on black, fitted in 20×20, centre of mass at (13.5, 13.5).
    Raises:
        EmptyImageError: nothing is drawn (blank, constant, 1×1). UploadError: anything else unreadable.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        pixels = _decode(bytes(data))
    elif isinstance(data, np.ndarray):
        pixels = _as_float(data)
    else:
        raise UploadError(f"expected image bytes or a numpy array, got {type(data).__name__}")
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4) and pixels[..., -1].max() <= 0:
        raise EmptyImageError("nothing is drawn yet")
    return _fit(_bright_on_dark(_grey(pixels)))


def canvas_digit(image_data: np.ndarray | None) -> np.ndarray | None:
    """A drawing canvas's RGBA pixels ``(H, W, 4)`` → ``preprocess_image``'s 28×28, or None when nothing is drawn."""
    if image_data is None:
        return None
    try:
        return preprocess_image(image_data)
    except EmptyImageError:
        return None


def react(model: nn.Module, image: np.ndarray, *, eps: float, saliency_method: str = "input_gradient") -> dict:
    """How ``model`` sees one 28×28 digit: prediction, saliency, and FGSM / TGSM at ``eps`` (no true label: the
    attacks push away from, resp. towards (pred + 1) mod K from, the model's own prediction).

    Returns:
        ``{"fgsm": panel, "tgsm": panel}``, each ``panels.attack_panel`` (numpy arrays, ``probs_clean`` the
        prediction's probabilities ``(K,)``, ``saliency_clean`` the map ``(1, 28, 28)``).
    """
    pixels = np.array(image, dtype=np.float32)  # a copy: cached arrays are read-only
    x = torch.from_numpy(pixels.reshape(1, 1, SIZE, SIZE))
    y = predict(model, x)  # (1,): the attacks treat the model's own answer as the label
    return {method: attack_panel(model, x, y, method=method, size=eps, target="next" if method == "tgsm" else None,
                                 saliency_method=saliency_method) for method in ("fgsm", "tgsm")}


def summary_row(name: str, reaction: dict) -> dict:
    """One table row for ``react``'s result: the prediction and its confidence, then where FGSM and TGSM take it."""
    fgsm, tgsm = reaction["fgsm"], reaction["tgsm"]
    return {"model": name, "prediction": fgsm["pred_clean"], "confidence": float(fgsm["probs_clean"].max()),
            "after FGSM": fgsm["pred_adv"], "FGSM confidence": float(fgsm["probs_adv"].max()),
            "TGSM target": tgsm["target"], "after TGSM": tgsm["pred_adv"],
            "TGSM reached target": tgsm["pred_adv"] == tgsm["target"]}
