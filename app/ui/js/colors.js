// Colours shared by the plots: classes, and weights (blue positive, orange negative,
// as in TensorFlow Playground).

export const CLASS_COLORS = [
  [242, 142, 43], // orange
  [42, 127, 212], // blue
  [76, 175, 80], // green
  [156, 95, 214], // purple
  [225, 87, 89], // red
  [23, 190, 207], // teal
  [237, 201, 72], // yellow
  [140, 86, 75], // brown
  [255, 157, 167], // pink
  [127, 127, 127], // grey
];
export const POSITIVE = [37, 99, 235];
export const NEGATIVE = [234, 88, 12];

export function classColor(index) {
  return CLASS_COLORS[((index % CLASS_COLORS.length) + CLASS_COLORS.length) % CLASS_COLORS.length];
}

export function rgb([r, g, b], alpha = 1) {
  return alpha === 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${alpha})`;
}

/** Blend white towards colour by t in [0, 1]. */
export function tint(color, t) {
  return color.map((c) => Math.round(255 + (c - 255) * t));
}

/** Diverging scale for v in [-1, 1]: orange (negative) .. white .. blue (positive). */
export function diverging(v, strength = 0.8) {
  const t = Math.max(-1, Math.min(1, v));
  return tint(t >= 0 ? POSITIVE : NEGATIVE, Math.abs(t) * strength);
}
