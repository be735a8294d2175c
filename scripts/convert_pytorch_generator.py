#!/usr/bin/env python3
"""Convert a pytorch-CycleGAN-and-pix2pix generator (latest_net_G_A.pth) into mr2ct weights.

    python scripts/convert_pytorch_generator.py latest_net_G_A.pth model.safetensors \
        --mr-percentiles 0.5 99.5 --ct-window -1024 3000 [--spacing 1.0] [--size 256]

Needs PyTorch (only to unpickle the checkpoint). Supported: --netG resnet_9blocks,
resnet_6blocks (any block count), unet_256 and unet_128 (any depth from 5 levels), trained
with --norm instance, --output_nc 1 and --input_nc 1 (or 2K+1 neighbouring MR slices, read by
mr2ct as 2.5D context K). The architecture, widths and channel counts are read from the
tensors themselves; --netG, when given, is checked against them.

What the checkpoint cannot say is how the images were scaled before training; state it:
  --mr-percentiles LO HI  each MR volume's LO-th percentile became -1 and its HI-th +1;
  --ct-window MIN MAX     MIN HU became -1 and MAX HU +1 (the generator's tanh range);
  --spacing MM            slices were resampled to MM mm pixels (mr2ct then translates whole
                          slices at that spacing); without it every slice is stretched to
                          --size x --size, as pix2pix's resize does.

The output is a safetensors file: every tensor as G_AB.<PyTorch key> (f32), and the metadata
`config` (mr2ct's TrainConfig: model, ngf, n_blocks / unet_downs, context, size, spacing) and
`prep` (mr2ct's PrepRecord with the scaling stated above) that `mr2ct translate --weights`
reads.

Refused, with the reason: batch-norm models (mr2ct's generators use instance norm without
affine parameters, so the convolutions carry biases and there are no running statistics to
fold in), RGB models (output_nc 3: mr2ct makes one gray CT slice), even input_nc, input_nc
above 1 without --spacing (mr2ct runs context models on whole slices only), and any
checkpoint whose tensors do not match the architecture exactly.
"""

import argparse
import json
import os
import re
import struct
import sys
import tempfile

NETG_SHAPES = {
    "resnet_9blocks": ("resnet", 9),
    "resnet_6blocks": ("resnet", 6),
    "unet_256": ("unet", 8),
    "unet_128": ("unet", 7),
}

# Layer index of the first residual block in ResnetGenerator's Sequential: reflection pad,
# conv 7x7, norm, ReLU, then (conv, norm, ReLU) twice for the downsamplings.
RESNET_FIRST_BLOCK = 10


class Refused(Exception):
    """A checkpoint mr2ct cannot run; the message says why."""


def resnet_layout(cin, ngf, blocks, cout):
    """Key -> shape of ResnetGenerator's state_dict with instance norm (convs with bias)."""
    keys = {}

    def conv(index, c_in, c_out, k):
        keys["model.%s.weight" % index] = [c_out, c_in, k, k]
        keys["model.%s.bias" % index] = [c_out]

    def conv_transposed(index, c_in, c_out, k):
        keys["model.%s.weight" % index] = [c_in, c_out, k, k]
        keys["model.%s.bias" % index] = [c_out]

    conv("1", cin, ngf, 7)
    conv("4", ngf, 2 * ngf, 3)
    conv("7", 2 * ngf, 4 * ngf, 3)
    width = 4 * ngf
    for b in range(blocks):
        # ResnetBlock: [pad, conv, norm, ReLU, pad, conv, norm].
        conv("%d.conv_block.1" % (RESNET_FIRST_BLOCK + b), width, width, 3)
        conv("%d.conv_block.5" % (RESNET_FIRST_BLOCK + b), width, width, 3)
    up = RESNET_FIRST_BLOCK + blocks
    conv_transposed(str(up), 4 * ngf, 2 * ngf, 3)
    conv_transposed(str(up + 3), 2 * ngf, ngf, 3)
    conv(str(up + 7), ngf, cout, 7)
    return keys


def unet_layout(cin, ngf, downs, cout):
    """Key -> shape of UnetGenerator's state_dict with instance norm (convs with bias)."""
    keys = {}
    # Outermost block: [down conv, sub, ReLU, up conv, tanh].
    keys["model.model.0.weight"] = [ngf, cin, 4, 4]
    keys["model.model.0.bias"] = [ngf]
    keys["model.model.3.weight"] = [2 * ngf, cout, 4, 4]
    keys["model.model.3.bias"] = [cout]
    # The nested blocks, outermost first: (outer, inner) channels.
    levels = [(ngf, 2 * ngf), (2 * ngf, 4 * ngf), (4 * ngf, 8 * ngf)]
    levels += [(8 * ngf, 8 * ngf)] * (downs - 4)
    prefix = "model.model.1.model."
    for i, (outer, inner) in enumerate(levels):
        innermost = i == len(levels) - 1
        # Middle: [LeakyReLU, down, norm, sub, ReLU, up, norm]; the innermost has neither the
        # down norm nor a sub: [LeakyReLU, down, ReLU, up, norm].
        keys[prefix + "1.weight"] = [inner, outer, 4, 4]
        keys[prefix + "1.bias"] = [inner]
        up_at, up_in = ("3", inner) if innermost else ("5", 2 * inner)
        keys[prefix + up_at + ".weight"] = [up_in, outer, 4, 4]
        keys[prefix + up_at + ".bias"] = [outer]
        prefix += "3.model."
    return keys


def read_state_dict(path):
    import torch

    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # PyTorch before 1.13 has no weights_only
            obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 (any unpickling failure is the user's file)
        raise Refused("%s: cannot read as a PyTorch checkpoint: %s" % (path, e))
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise Refused("%s: not a state_dict of tensors (save the generator with "
                      "torch.save(net.state_dict(), path), as pytorch-CycleGAN-and-pix2pix does)"
                      % path)
    out = {}
    for key, value in obj.items():
        # Saved from nn.DataParallel without unwrapping.
        key = key[len("module."):] if key.startswith("module.") else key
        out[key] = value.detach().to(torch.float32).cpu().contiguous().numpy()
    return out


def refuse_batch_norm(path, sd):
    affine = sorted(k for k, v in sd.items() if k.endswith(".weight") and v.ndim == 1)
    if affine:
        raise Refused(
            "%s: has normalization layers with learned scales (%s, ...): a --norm batch model. "
            "mr2ct's generators use instance norm without affine parameters; retrain with "
            "--norm instance" % (path, affine[0]))


def drop_stale_norm_stats(sd):
    """PyTorch 0.4 saved running statistics of InstanceNorm layers that never use them."""
    stale = [k for k in sd if k.rsplit(".", 1)[-1] in ("running_mean", "running_var",
                                                       "num_batches_tracked")]
    for k in stale:
        del sd[k]
    return stale


def infer(path, sd):
    """(kind, input_nc, ngf, blocks or levels, output_nc) from the tensors."""
    if "model.1.weight" in sd and sd["model.1.weight"].ndim == 4:
        w = sd["model.1.weight"]
        ngf, cin = w.shape[0], w.shape[1]
        blocks = 0
        while "model.%d.conv_block.1.weight" % (RESNET_FIRST_BLOCK + blocks) in sd:
            blocks += 1
        head = "model.%d.weight" % (RESNET_FIRST_BLOCK + blocks + 7)
        if head not in sd:
            raise Refused("%s: a ResNet generator with %d blocks should have %s" % (path, blocks, head))
        return "resnet", cin, ngf, blocks, sd[head].shape[0]
    if "model.model.0.weight" in sd:
        w = sd["model.model.0.weight"]
        ngf, cin = w.shape[0], w.shape[1]
        levels = 1
        prefix = "model.model.1.model."
        while prefix + "1.weight" in sd:
            levels += 1
            prefix += "3.model."
        up = "model.model.3.weight"
        if up not in sd:
            raise Refused("%s: a U-Net generator should have %s" % (path, up))
        return "unet", cin, ngf, levels, sd[up].shape[1]
    raise Refused("%s: neither a ResnetGenerator (model.1.weight) nor a UnetGenerator "
                  "(model.model.0.weight) of pytorch-CycleGAN-and-pix2pix; first keys: %s"
                  % (path, ", ".join(list(sd)[:4])))


def move_dropout_keys(sd):
    """ResnetBlock with use_dropout puts Dropout at conv_block.4, so its second conv is
    conv_block.6; dropout is the identity at inference, so it becomes conv_block.5."""
    moved = {}
    for key in list(sd):
        m = re.fullmatch(r"(model\.\d+\.conv_block\.)6\.(weight|bias)", key)
        if m:
            moved[key] = m.group(1) + "5." + m.group(2)
    for old, new in moved.items():
        sd[new] = sd.pop(old)
    return bool(moved)


def check_layout(path, sd, expected):
    missing = sorted(set(expected) - set(sd))
    extra = sorted(set(sd) - set(expected))
    if missing and any(k.endswith(".bias") for k in missing):
        raise Refused("%s: convolutions without biases (%s): a --norm batch model? mr2ct's "
                      "generators use instance norm and biased convolutions"
                      % (path, next(k for k in missing if k.endswith(".bias"))))
    if missing or extra:
        raise Refused("%s: tensors do not match the architecture read from it: missing %s, "
                      "unexpected %s" % (path, missing[:4] or "none", extra[:4] or "none"))
    for key, shape in expected.items():
        if list(sd[key].shape) != shape:
            raise Refused("%s: tensor %s has shape %s, the architecture needs %s"
                          % (path, key, list(sd[key].shape), shape))


def safetensors_bytes(tensors, metadata):
    """The safetensors format: u64 header length, JSON header (names, dtypes, shapes, byte
    ranges, __metadata__ of strings), then the little-endian data in header order."""
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        a = tensors[name]
        data = a.astype("<f4").tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_atomic(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".convert-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private; give it the mode an ordinary open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def convert(args):
    if args.norm != "instance":
        raise Refused("--norm %s: mr2ct's generators use instance norm without affine "
                      "parameters; a batch-norm generator cannot be converted (retrain with "
                      "--norm instance)" % args.norm)
    lo, hi = args.mr_percentiles
    if not 0.0 <= lo < hi <= 100.0:
        raise Refused("--mr-percentiles %g %g: need 0 <= LO < HI <= 100" % (lo, hi))
    ct_min, ct_max = args.ct_window
    if not ct_min < ct_max:
        raise Refused("--ct-window %g %g: MIN must be below MAX" % (ct_min, ct_max))
    if args.spacing is not None and not args.spacing > 0:
        raise Refused("--spacing %g: must be a positive number of mm" % args.spacing)

    sd = read_state_dict(args.checkpoint)
    refuse_batch_norm(args.checkpoint, sd)
    stale = drop_stale_norm_stats(sd)
    dropout = move_dropout_keys(sd)
    kind, cin, ngf, depth, cout = infer(args.checkpoint, sd)
    if cout != 1:
        raise Refused("%s: output_nc is %d (an RGB model?): mr2ct's generators make one gray "
                      "CT slice; retrain with --output_nc 1" % (args.checkpoint, cout))
    if cin % 2 == 0:
        raise Refused("%s: input_nc is %d: mr2ct feeds 1 MR slice or 2K+1 neighbouring slices "
                      "(2.5D context K)" % (args.checkpoint, cin))
    if cin > 1 and args.spacing is None:
        raise Refused("%s: input_nc %d (2.5D context): mr2ct runs context models on whole slices "
                      "at a pixel spacing; state the one used in training with --spacing MM"
                      % (args.checkpoint, cin))
    if args.netG is not None:
        want_kind, want_depth = NETG_SHAPES[args.netG]
        if (want_kind, want_depth) != (kind, depth):
            raise Refused("%s: --netG %s, but the tensors are a %s with %d %s"
                          % (args.checkpoint, args.netG, kind, depth,
                             "blocks" if kind == "resnet" else "levels"))
    if kind == "unet" and not 5 <= depth <= 10:
        raise Refused("%s: a U-Net with %d levels; mr2ct builds 5 to 10" % (args.checkpoint, depth))
    layout = resnet_layout if kind == "resnet" else unet_layout
    check_layout(args.checkpoint, sd, layout(cin, ngf, depth, cout))

    size = args.size
    multiple = 4 if kind == "resnet" else 2 ** depth
    if not (32 <= size <= 1024 and size % 4 == 0 and size % multiple == 0):
        raise Refused("--size %d: the %s needs a multiple of %d from 32 to 1024"
                      % (size, kind, max(4, multiple)))

    context = (cin - 1) // 2
    config = {
        # Inference reads model, size, ngf, n_blocks / unet_downs, context and spacing; the
        # paired objective is the one that allows context slices.
        "objective": "paired",
        "model": kind,
        "size": size,
        "ngf": int(ngf),
        "n_blocks": int(depth) if kind == "resnet" else 6,
        "unet_downs": int(depth) if kind == "unet" else 7,
        "context": context,
        "spacing": float(args.spacing or 0.0),
        "crop": 0,
    }
    prep = {
        "size": size,
        "ct": {"min_hu": ct_min, "max_hu": ct_max},
        "mr_percentiles": [lo, hi],
        "mr_volumes": [],
        "background": {"ct_threshold_hu": -500.0, "mr_threshold_unit": -0.8,
                       "min_foreground_fraction": 0.05},
        "padding": "centred in a square of side max(rows, cols), pad value -1 (stated when "
                   "converting a PyTorch checkpoint)",
        "resampling": "area average when shrinking, bilinear when enlarging",
        "spacing": args.spacing,
    }
    source = "pytorch-CycleGAN-and-pix2pix %s (%s, ngf %d, %s %d, input_nc %d, output_nc 1%s)" % (
        os.path.basename(args.checkpoint), kind, ngf,
        "blocks" if kind == "resnet" else "levels", depth, cin,
        ", dropout layers dropped" if dropout else "")
    metadata = {
        "config": json.dumps(config),
        "prep": json.dumps(prep),
        "converted_from": source,
    }
    tensors = {"G_AB." + k: v for k, v in sd.items()}
    write_atomic(args.out, safetensors_bytes(tensors, metadata))
    notes = []
    if stale:
        notes.append("dropped %d stale instance-norm statistics" % len(stale))
    if context:
        notes.append("input_nc %d read as 2.5D context %d (slices k-%d..k+%d)"
                     % (cin, context, context, context))
    print("%s: %s, %d tensors, size %d%s%s" % (
        args.out, source, len(tensors), size,
        ", spacing %g mm" % args.spacing if args.spacing else ", slices stretched to the size",
        "; " + "; ".join(notes) if notes else ""))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="latest_net_G_A.pth (the MR -> CT generator)")
    p.add_argument("out", help="mr2ct weights file to write (.safetensors)")
    p.add_argument("--mr-percentiles", nargs=2, type=float, required=True, metavar=("LO", "HI"),
                   help="MR percentiles mapped to -1 and +1 when the model was trained")
    p.add_argument("--ct-window", nargs=2, type=float, required=True, metavar=("MIN", "MAX"),
                   help="HU mapped to -1 and +1 when the model was trained")
    p.add_argument("--spacing", type=float, default=None, metavar="MM",
                   help="pixel spacing the slices were resampled to (default: stretched)")
    p.add_argument("--size", type=int, default=256,
                   help="image side the model was trained on (pix2pix's crop_size; default 256)")
    p.add_argument("--netG", choices=sorted(NETG_SHAPES), default=None,
                   help="the training run's --netG, checked against the tensors")
    p.add_argument("--norm", choices=["instance", "batch", "none"], default="instance",
                   help="the training run's --norm (only instance converts)")
    args = p.parse_args(argv)
    try:
        convert(args)
    except Refused as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
