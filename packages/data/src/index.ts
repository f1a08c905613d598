export { BITMAP_FONTS, FONT_CHARSET } from './bitmap-font';
export type { BitmapFont, FontName } from './bitmap-font';
export { CaptionEncoder, CaptionError, DEFAULT_CAPTION_ENCODER_CONFIG, IGNORE_INDEX } from './caption-encoder';
export type { CaptionEncoderConfig, EncodedCaptions } from './caption-encoder';
export { DataLoader, DEFAULT_DATA_LOADER_CONFIG } from './data-loader';
export type { BadSamplePolicy, Batch, DataCursor, DataLoaderConfig, EpochReport, SkippedSample } from './data-loader';
export { EmptyDatasetError, formatOrigin, IndexedDataset, SampleError } from './dataset';
export type { EpochOrder, ImageCaptionDataset, LoadedSample, PendingRecord, SampleOrigin } from './dataset';
export { FolderDataset } from './folder-dataset';
export { decodeImage, ImageDecodeError } from './image-decode';
export type { RgbImage } from './image-decode';
export { encodePng, imageGrid, toBatchTensor } from './image-grid';
export { resizeCenterCrop } from './image-resize';
export { JsonlDataset } from './jsonl-dataset';
export { expandBraces, expandShards } from './shard-pattern';
export {
  DEFAULT_SYNTHETIC_CONFIG,
  parseCaption,
  POSITIONS,
  renderCaption,
  SHAPE_COLOURS,
  SHAPES,
  SPLITS,
  SyntheticConfigError,
  SyntheticTextImages,
} from './synthetic';
export type {
  ColourName,
  ParsedCaption,
  PositionName,
  ShapeFields,
  ShapeName,
  SplitName,
  SyntheticConfig,
  SyntheticFields,
  SyntheticSample,
} from './synthetic';
export { readTar, readTarFile, TarError } from './tar';
export type { TarEntry } from './tar';
export { DEFAULT_WEBDATASET_CONFIG, WebDataset } from './webdataset';
export type { WebDatasetConfig } from './webdataset';
