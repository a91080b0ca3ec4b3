//! Throwaway redis-server instances on free loopback ports.
