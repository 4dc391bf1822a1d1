"""The foundation every stage stands on: settings and business parameters, months, the raw data
contract, the warehouse connection, the value measure, and crash leftovers. Imports nothing above it."""
