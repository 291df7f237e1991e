import { ConfigError } from '@metad2a/core';

export interface PlateauOptions {
  mode?: 'min' | 'max';
  factor?: number;
  patience?: number;
  threshold?: number;
  thresholdMode?: 'rel' | 'abs';
  cooldown?: number;
  minLr?: number;
  eps?: number;
}

/** Everything that changes while stepping: saved in checkpoints so a resumed run continues identically. */
export interface PlateauState {
  lr: number;
  best: number;
  numBadEpochs: number;
  cooldownCounter: number;
  lastEpoch: number;
}

/**
 * torch.optim.lr_scheduler.ReduceLROnPlateau for one parameter group, statement for statement
 * (PyTorch 2.x): defaults mode 'min', factor 0.1, patience 10, threshold 1e-4 in 'rel' mode,
 * cooldown 0, min_lr 0, eps 1e-8. The metric is compared with plain float comparisons, so a NaN
 * metric counts as a bad epoch, as in PyTorch.
 */
export class ReduceLROnPlateau {
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  readonly minLr: number;
  readonly eps: number;
  lr: number;
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;
  lastEpoch = 0;

  constructor(lr: number, options: PlateauOptions = {}) {
    this.mode = options.mode ?? 'min';
    this.factor = options.factor ?? 0.1;
    this.patience = options.patience ?? 10;
    this.threshold = options.threshold ?? 1e-4;
    this.thresholdMode = options.thresholdMode ?? 'rel';
    this.cooldown = options.cooldown ?? 0;
    this.minLr = options.minLr ?? 0;
    this.eps = options.eps ?? 1e-8;
    if (!(this.factor < 1)) throw new ConfigError('scheduler.factor', `${this.factor}`, 'factor should be < 1.0 (as in PyTorch)');
    if (this.mode !== 'min' && this.mode !== 'max') throw new ConfigError('scheduler.mode', `'${this.mode}'`, "'min' or 'max'");
    if (this.thresholdMode !== 'rel' && this.thresholdMode !== 'abs') throw new ConfigError('scheduler.thresholdMode', `'${this.thresholdMode}'`, "'rel' or 'abs'");
    this.lr = lr;
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  get inCooldown(): boolean {
    return this.cooldownCounter > 0;
  }

  isBetter(a: number, best: number): boolean {
    if (this.mode === 'min' && this.thresholdMode === 'rel') return a < best * (1 - this.threshold);
    if (this.mode === 'min') return a < best - this.threshold;
    if (this.thresholdMode === 'rel') return a > best * (this.threshold + 1);
    return a > best + this.threshold;
  }

  /** One epoch's metric; returns true when the learning rate was reduced. */
  step(metric: number): boolean {
    const current = Number(metric);
    this.lastEpoch += 1;
    if (this.isBetter(current, this.best)) {
      this.best = current;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs += 1;
    }
    if (this.inCooldown) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0; // ignore any bad epochs in cooldown
    }
    let reduced = false;
    if (this.numBadEpochs > this.patience) {
      const oldLr = this.lr;
      const newLr = Math.max(oldLr * this.factor, this.minLr);
      if (oldLr - newLr > this.eps) {
        this.lr = newLr;
        reduced = true;
      }
      this.cooldownCounter = this.cooldown;
      this.numBadEpochs = 0;
    }
    return reduced;
  }

  state(): PlateauState {
    // JSON has no Infinity: an untouched best is stored as null by JSON.stringify, restored below.
    return { lr: this.lr, best: this.best, numBadEpochs: this.numBadEpochs, cooldownCounter: this.cooldownCounter, lastEpoch: this.lastEpoch };
  }

  loadState(s: PlateauState | { lr: number; best: number | null; numBadEpochs: number; cooldownCounter: number; lastEpoch: number }): void {
    this.lr = s.lr;
    this.best = s.best === null ? (this.mode === 'min' ? Infinity : -Infinity) : s.best;
    this.numBadEpochs = s.numBadEpochs;
    this.cooldownCounter = s.cooldownCounter;
    this.lastEpoch = s.lastEpoch;
  }
}
