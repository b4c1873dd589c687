//! The example target kind: the README's library example, on the bundled default model.

use diffulex_edge::runtime::sampler::SDARSampler;
use diffulex_edge::runtime::{DiffusionEngine, DiffusionGenerationConfig, ModelType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = diffulex_downstream::repository().join("models/default/model.pte");
    let mut engine = DiffusionEngine::from_pte(model, ModelType::Auto, 64)?;
    let config = DiffusionGenerationConfig::new(8).with_sampler(SDARSampler::new(0.9, 0.0));
    let out = engine.generate(&[7, 8, 14, 9, 10, 15], &config)?; // "34+56="
    println!("{:?} {:?}", out.tokens, out.stop_reason);
    Ok(())
}
