/**
 * The files a tokenizer is built from, as parsed JSON and text. The model layer produces them (a model
 * directory's tokenizer files, or tokenizer.json built in memory from a GGUF file's metadata); the tokenizer
 * layer (src/tokenizer/) builds the tokenizer from them.
 */
export interface TokenizerFiles {
  tokenizerJson: Record<string, unknown>; // tokenizer.json
  tokenizerConfig?: Record<string, unknown>; // tokenizer_config.json
  chatTemplate?: string | null; // chat_template.jinja, which wins over tokenizer_config's
  generationConfig?: Record<string, unknown> | null; // generation_config.json (its eos ids)
}
