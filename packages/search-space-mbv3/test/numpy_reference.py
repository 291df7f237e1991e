"""Independent numpy forward pass of an OFA MobileNetV3 subnet (test reference for network.ts).

Reads <dir>/model.json: {config, resolution, num_classes, width_mult, tensors: {name: [shape, offset]}},
<dir>/model.f32 (float32 blob; conv kernels [kh, kw, in, out], depthwise [kh, kw, c, 1], linear [out, in])
and <dir>/input.f32 (NHWC); prints {"eval": logits, "train": logits} as JSON. The architecture is derived
here from the config as once-for-all's OFAMobileNetV3.get_active_subnet builds it, not read from our code.
"""
import json, sys
import numpy as np

d = sys.argv[1]
man = json.load(open(f'{d}/model.json'))
blob = np.fromfile(f'{d}/model.f32', dtype='<f4').astype(np.float64)
T = {n: blob[o:o + int(np.prod(s))].reshape(s) for n, (s, o) in man['tensors'].items()}
cfg, r, ncls, w = man['config'], man['resolution'], man['num_classes'], man['width_mult']
x0 = np.fromfile(f'{d}/input.f32', dtype='<f4').astype(np.float64).reshape(-1, r, r, 3)


def md(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv(x, k, stride, depthwise=False):
    kh = k.shape[0]
    p = kh // 2
    b, h, wd, c = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    oh = (h + 2 * p - kh) // stride + 1
    ow = (wd + 2 * p - kh) // stride + 1
    out = np.zeros((b, oh, ow, k.shape[3] if not depthwise else c))
    for i in range(kh):
        for j in range(kh):
            patch = xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
            out += patch * k[i, j, :, 0] if depthwise else patch @ k[i, j]
    return out


def bn(x, pre, train):
    if train:
        m, v = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    else:
        m, v = T[pre + '.running_mean'], T[pre + '.running_var']
    return (x - m) / np.sqrt(v + 1e-5) * T[pre + '.weight'] + T[pre + '.bias']


relu = lambda x: np.maximum(x, 0)
hsig = lambda x: np.clip(x + 3, 0, 6) / 6
hswish = lambda x: x * hsig(x)


def forward(x, train):
    widths = [md(b * w) for b in [16, 16, 24, 40, 80, 112, 160, 960, 1280]]
    x = hswish(bn(conv(x, T['first_conv.conv.weight'], 2), 'first_conv.bn', train))
    # (in, out, e, k, stride, act, se) for the first block then the active slots
    blocks = [(widths[0], widths[1], 1, 3, 1, relu, False)]
    cin = widths[1]
    acts = [relu, relu, hswish, hswish, hswish]
    for s in range(5):
        for j in range(cfg['d'][s]):
            i = 4 * s + j
            blocks.append((cin, widths[2 + s], cfg['e'][i], cfg['ks'][i], [2, 2, 2, 1, 2][s] if j == 0 else 1, acts[s], s in (1, 3, 4)))
            cin = widths[2 + s]
    for n, (ci, co, e, k, st, act, se) in enumerate(blocks):
        p = f'blocks.{n}.conv.'
        h = x
        if e != 1:
            h = act(bn(conv(h, T[p + 'inverted_bottleneck.conv.weight'], 1), p + 'inverted_bottleneck.bn', train))
        h = act(bn(conv(h, T[p + 'depth_conv.conv.weight'], st, True), p + 'depth_conv.bn', train))
        if se:
            q = p + 'depth_conv.se.fc.'
            y = h.mean(axis=(1, 2), keepdims=True)
            y = relu(y @ T[q + 'reduce.weight'][0, 0] + T[q + 'reduce.bias'])
            y = hsig(y @ T[q + 'expand.weight'][0, 0] + T[q + 'expand.bias'])
            h = h * y
        h = bn(conv(h, T[p + 'point_linear.conv.weight'], 1), p + 'point_linear.bn', train)
        x = h + x if (st == 1 and ci == co) else h
    x = hswish(bn(conv(x, T['final_expand_layer.conv.weight'], 1), 'final_expand_layer.bn', train))
    x = x.mean(axis=(1, 2))
    x = hswish(x @ T['feature_mix_layer.conv.weight'][0, 0])
    return x @ T['classifier.linear.weight'].T + T['classifier.linear.bias']


print(json.dumps({'eval': forward(x0, False).tolist(), 'train': forward(x0, True).tolist()}))
