import { describe, expect, it } from 'vitest';
import { decideGate } from '../gpu-worker/gate.js';

const cfg = { minStd: 0.01, minRank: 2, minEmbeddingStd: 0.05, margin: 0.02 };
const healthy = { finalLoss: 20, std: 0.08, effectiveRank: 30, accuracy: 0.8 };

describe('publish gate', () => {
  it('passes a healthy model with no current model, or one within the margin', () => {
    expect(decideGate(healthy, null, cfg, false)).toMatchObject({ pass: true, reasons: [] });
    expect(decideGate(healthy, { accuracy: 0.81 }, cfg, false).pass).toBe(true);
  });

  it('rejects non-finite loss and collapse, naming each cause, even with force', () => {
    const d = decideGate({ finalLoss: NaN, std: 0.001, effectiveRank: 1.1, accuracy: 0.1 }, null, cfg, true);
    expect(d.pass).toBe(false);
    expect(d.reasons.join(' | ')).toMatch(/loss is not finite.*std 0\.0010 is below the floor 0\.01.*effective rank 1\.10 is below the floor 2/);
  });

  it('rejects collapsed embeddings even when the representation still looks spread', () => {
    const d = decideGate({ ...healthy, embeddingStd: 0.014 }, null, cfg, false);
    expect(d.pass).toBe(false);
    expect(d.reasons).toEqual([expect.stringMatching(/collapsed: embedding std 0\.0140 is below the floor 0\.05/)]);
    expect(decideGate({ ...healthy, embeddingStd: 0.4 }, null, cfg, false).pass).toBe(true);
  });

  it('rejects a regression beyond the margin unless forced', () => {
    const worse = { ...healthy, accuracy: 0.7 };
    const d = decideGate(worse, { accuracy: 0.8 }, cfg, false);
    expect(d.pass).toBe(false);
    expect(d.reasons[0]).toMatch(/worse than the current model: accuracy 0\.7000 vs 0\.8000/);
    expect(decideGate(worse, { accuracy: 0.8 }, cfg, true)).toMatchObject({ pass: true, forced: true });
  });

  it('skips the comparison when either side has no labelled accuracy', () => {
    expect(decideGate({ ...healthy, accuracy: null }, { accuracy: 0.9 }, cfg, false).pass).toBe(true);
  });
});
