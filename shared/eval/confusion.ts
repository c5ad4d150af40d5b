/** counts[true][predicted]. */
export function confusionMatrix(labels: Int32Array, predictions: Int32Array, numClasses: number): number[][] {
  if (labels.length !== predictions.length) {
    throw new Error(`confusionMatrix: ${labels.length} labels but ${predictions.length} predictions`);
  }
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    const p = predictions[i]!;
    if (y < 0 || y >= numClasses || p < 0 || p >= numClasses) {
      throw new Error(`confusionMatrix: row ${i} has label ${y} / prediction ${p} outside [0, ${numClasses})`);
    }
    m[y]![p]!++;
  }
  return m;
}
