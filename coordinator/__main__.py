from coordinator.cli.main import main

if __name__ == "__main__":  # worker processes import this module too: only a real run starts the CLI
    main()
