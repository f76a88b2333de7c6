from hybrid_knative.cli.main import main

main()
