"""Upscaling quality on the real sample clips: downscale by 2 (area filter), upscale back, compare.

    python benchmarks/upscale_quality.py                        # 3 frames per clip, 480x270 crops
    python benchmarks/upscale_quality.py --frames 8 --crop 0x0  # more frames, whole frames

For each clip (``.cache/media/bigbuckbunny.mp4``: 1280x720 animation; ``bikes.mp4``: 640x272
camera footage), ``--frames`` frames spread over the clip are centre-cropped to ``--crop`` (the
CPU cost of the RRDB models bounds it), shrunk by ``--scale`` with ``cv2.INTER_AREA`` and rounded
to 8 bits, then upscaled back by each method: OpenCV bicubic and Lanczos, and each Real-ESRGAN
model (fp32, CPU).  PSNR and SSIM are ``slomo.evaluate``'s, on 8-bit RGB against the originals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from slomo import evaluate
from slomo.models.realesrgan import network as realesrgan

ROOT = Path(__file__).resolve().parents[1]
CLIPS = (ROOT / ".cache" / "media" / "bigbuckbunny.mp4", ROOT / ".cache" / "media" / "bikes.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--crop", default="480x270", help="WxH centre crop of the originals; 0x0: none")
    parser.add_argument("--methods",
                        default=",".join([*evaluate.UPSCALE_BASELINES, *realesrgan.ARCHITECTURES]))
    args = parser.parse_args()
    crop_w, crop_h = (int(v) for v in args.crop.split("x"))
    crop = (crop_w, crop_h) if crop_w and crop_h else None
    print("| clip | method | frames | PSNR dB | SSIM | s/frame |\n|---|---|---:|---:|---:|---:|")
    for clip in CLIPS:
        pairs = evaluate.upscale_pairs(clip, args.scale, args.frames, crop)
        size = "x".join(map(str, pairs[0][1].shape[1::-1]))
        for method in args.methods.split(","):
            if method in evaluate.UPSCALE_BASELINES:
                upscale = evaluate.baseline_upscaler(method, args.scale)
            else:
                upscale = realesrgan.create(method, args.scale).upscale
            r = evaluate.evaluate_upscaling(method, upscale, clip.name, pairs)
            print(f"| {clip.name} ({size}) | {method} | {r.frames} | {r.psnr:.2f} | {r.ssim:.4f} | "
                  f"{r.seconds / r.frames:.2f} |", flush=True)


if __name__ == "__main__":
    main()
