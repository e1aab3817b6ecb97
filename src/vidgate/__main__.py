from vidgate.cli.root import main

# Guarded: render processes are spawned, and a spawned child imports the parent's __main__ module.
if __name__ == "__main__":
    main()
