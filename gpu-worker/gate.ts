/**
 * The publish gate: decides whether a freshly trained checkpoint may become `latest`. A checkpoint that
 * fails is still published as a version, marked rejected with these reasons.
 *
 * Always enforced: a finite final loss, and no collapse (representation std and effective rank above
 * floors). Enforced unless the job says `force`: not worse than the current model, measured on the same
 * evaluation (same held-out images), by more than `margin` (absolute accuracy).
 */
export interface GateConfig {
  /** Floor on the representation's per-dimension std of L2-normalised rows (≈ 1/√d when healthy). */
  minStd: number;
  /** Floor on the representation's effective rank (RankMe). */
  minRank: number;
  /** Floor on the embeddings' mean per-dimension std in the last training batch (VICReg's γ = 1 target). */
  minEmbeddingStd: number;
  margin: number;
}

export interface GateCandidate {
  finalLoss: number;
  std: number;
  effectiveRank: number;
  /**
   * Mean per-dimension std of the embeddings (expander output) in the last batch, read off the variance
   * term: with γ = 1 the hinge mean(relu(1 − std_j)) equals 1 − mean(std_j) while no dimension exceeds 1.
   * It is the first thing to collapse (the representation follows later), so it catches collapse early.
   */
  embeddingStd?: number;
  /** Accuracy on the held-out split (kNN top-1), or null when the data has no labels. */
  accuracy: number | null;
}

export interface GateDecision {
  pass: boolean;
  reasons: string[];
  /** Set when a comparison was made. */
  currentAccuracy?: number;
  /** True when force overrode a failed comparison (reported, not silent). */
  forced?: boolean;
}

export function decideGate(
  candidate: GateCandidate,
  current: { accuracy: number | null } | null,
  cfg: GateConfig,
  force: boolean,
): GateDecision {
  const reasons: string[] = [];
  if (!Number.isFinite(candidate.finalLoss)) reasons.push(`final loss is not finite (${candidate.finalLoss})`);
  if (!(candidate.std >= cfg.minStd)) {
    reasons.push(`collapsed: representation std ${fmt(candidate.std)} is below the floor ${cfg.minStd}`);
  }
  if (!(candidate.effectiveRank >= cfg.minRank)) {
    reasons.push(`collapsed: effective rank ${fmt(candidate.effectiveRank, 2)} is below the floor ${cfg.minRank}`);
  }
  if (candidate.embeddingStd !== undefined && !(candidate.embeddingStd >= cfg.minEmbeddingStd)) {
    reasons.push(
      `collapsed: embedding std ${fmt(candidate.embeddingStd)} is below the floor ${cfg.minEmbeddingStd} ` +
        '(the embeddings of different images have become nearly identical)',
    );
  }
  const decision: GateDecision = { pass: false, reasons };
  if (current && current.accuracy !== null && candidate.accuracy !== null) {
    decision.currentAccuracy = current.accuracy;
    if (candidate.accuracy < current.accuracy - cfg.margin) {
      const msg =
        `worse than the current model: accuracy ${fmt(candidate.accuracy)} vs ${fmt(current.accuracy)} ` +
        `(allowed margin ${cfg.margin})`;
      if (force) decision.forced = true;
      else reasons.push(msg);
    }
  }
  decision.pass = reasons.length === 0;
  return decision;
}

function fmt(x: number, digits = 4): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}
