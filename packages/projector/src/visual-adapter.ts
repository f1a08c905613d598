import { readAdapterConfig } from './adapter-checkpoint';
import { CodebookProjector, type CodebookProjectorConfig } from './codebook-projector';
import { IndexEmbedding, type IndexEmbeddingConfig } from './index-embedding';

/**
 * Which adapter feeds the LM: `'projector'` is ETT (codebook embeddings through the MLP),
 * `'index'` is the frozen-index baseline (a fresh table over code indices). Switching `kind` is
 * all it takes to run the paper's main comparison.
 */
export type VisualAdapterOptions =
  | ({ kind: 'projector' } & Partial<CodebookProjectorConfig> & Pick<CodebookProjectorConfig, 'inputDim' | 'outputDim'>)
  | ({ kind: 'index' } & Partial<IndexEmbeddingConfig> & Pick<IndexEmbeddingConfig, 'codebookSize' | 'outputDim'>);

export type AnyVisualAdapter = CodebookProjector | IndexEmbedding;

/** Builds either adapter from one options object. */
export function createVisualAdapter(options: VisualAdapterOptions): AnyVisualAdapter {
  const { kind, ...config } = options as { kind: string } & Record<string, unknown>;
  if (kind === 'projector') return new CodebookProjector(config as unknown as CodebookProjectorConfig);
  if (kind === 'index') return new IndexEmbedding(config as unknown as IndexEmbeddingConfig);
  throw new Error(`createVisualAdapter: kind must be 'projector' or 'index', got ${JSON.stringify(kind)}`);
}

/** Loads whichever adapter `dir` holds (its config.json names the kind). */
export async function loadVisualAdapter(dir: string): Promise<AnyVisualAdapter> {
  const { kind } = await readAdapterConfig(dir);
  return kind === 'projector' ? CodebookProjector.fromPretrained(dir) : IndexEmbedding.fromPretrained(dir);
}
