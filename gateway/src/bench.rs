//! `shale bench`. (Being written.)

/// Options of `shale bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let _ = args;
    todo!()
}
